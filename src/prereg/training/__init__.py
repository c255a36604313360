"""Training plumbing above the core: checkpoints, the JAX compilation cache, non-finite checks,
TensorBoard logging (what every study's runner shares)."""
