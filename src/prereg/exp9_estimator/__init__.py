"""exp9_estimator: does exp9's exact predictor rho predict the noise of real Gibbs-chain gradients?

exp9 never samples: rho = ||g||^2 / tr Sigma is computed from the resolvent.  This study takes
the parameters of a finished exp9 sweep (each run's matched crossings and last step), runs the
same random-scan heat-bath kernel as finite chains (K chains, B burn-in steps, T averaged steps,
uniform start), and compares the sampled gradient's signal-to-noise ratio with the exact
finite-chain value computed from P and with the asymptotic prediction rho * T (DESIGN section
11).  It also retrains the exp9 arms with the KL gradient's model side from persistent chains.

float64 throughout, like exp9: the runner switches JAX to x64 before building any array.
"""
