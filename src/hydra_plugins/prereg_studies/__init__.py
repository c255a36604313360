"""Hydra plugin: puts every prereg study's own ``conf/`` on prereg's config search path."""
