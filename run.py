"""prereg's entrypoint: ``python run.py [-m] [group=option ...] [key=value ...]``.

A thin wrapper: the same as ``prereg run ...`` (see :mod:`prereg.sweep.app`).  Its first lines
catch SIGTERM, SIGINT and SIGUSR2 with the standard library alone (importing ``prereg`` reads
the installed package's metadata, a slow import), then hand what they caught to prereg's
handlers: a signal at any moment from here on ends with one line and status 128 + signal.
"""

if __name__ == "__main__":
    import signal

    noted: list[int] = []
    for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):  # core.signals' INTERRUPT_SIGNALS
        signal.signal(_sig, lambda signum, frame: noted.append(signum))
    from prereg.core.signals import install_interrupt_handlers

    install_interrupt_handlers(noted)
    from prereg.sweep.app import main

    main()
