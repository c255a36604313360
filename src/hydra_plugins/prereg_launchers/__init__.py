"""prereg's Hydra launcher plugin: ``hydra/launcher=local`` and ``hydra/launcher=slurm``.

Hydra finds this package itself (every module under the ``hydra_plugins`` namespace package is
scanned for plugins); nothing needs registering by hand:

- :mod:`.config` stores the structured configs ``prereg_local_schema`` and
  ``prereg_slurm_schema`` in the ``hydra/launcher`` group, as hydra-submitit-launcher's
  ``config.py`` stores ``submitit_local`` and ``submitit_slurm``;
- :mod:`.search_path` appends ``pkg://hydra_plugins.prereg_launchers.conf`` to the config
  search path, so the profiles ``conf/hydra/launcher/{local,slurm}.yaml`` (package data) are
  found from any directory, after the app's own configs (a ``hydra/launcher/slurm.yaml`` in the
  app's config dir replaces the packaged one);
- :mod:`.launcher` holds the launchers. ``slurm`` runs a multirun as one SLURM job array
  (:class:`~.launcher.SlurmLauncher`), ``local`` is a bounded ``submitit_local``
  (:class:`~.launcher.BoundedLocalLauncher`: at most ``array_parallelism`` jobs at once,
  default the CPUs this process may use). Both wait for EVERY job. A job that dies outside its
  own code (SIGKILL, out of memory, ``scancel``, node failure, time limit) has no result to
  return: the stock launchers raise at the first such job, so Hydra never calls
  ``on_multirun_end`` and there is no verdict. Here (:mod:`.dead_jobs`) its ``run.json`` is
  written ``failed`` ("killed by SLURM: state FAILED (job 123_4)"), its return value says so,
  the sweep logs the dead jobs by name, and the verdict callback still runs over every job.
  With ``hydra.launcher.wait=false`` the slurm launcher submits the array and a verdict job and
  returns (:mod:`.submission`).

The launcher classes live in an installed, importable module, so submitit pickles them (and
Hydra's plugin registry, which travels to each job with Hydra's singletons) by reference.
"""
