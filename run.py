"""prereg's entrypoint: ``python run.py [-m] [group=option ...] [key=value ...]``.

A thin wrapper: the same as ``prereg run ...`` (see :mod:`prereg.sweep.app`).
"""

from prereg.sweep.app import main

if __name__ == "__main__":
    main()
