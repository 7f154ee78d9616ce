    # forty processes of its uid, deaf to SIGTSTP and SIGTERM, that send both to every
    # process they may signal, over and over: a clean-up running as this uid gets stopped
    # (the batch waits on it) or killed (this sample's processes live on)
    import os, signal, time
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for _ in range(40):
        try:
            if os.fork() == 0:
                try:
                    end = time.monotonic() + 60
                    while time.monotonic() < end:
                        os.kill(-1, signal.SIGTSTP)
                        os.kill(-1, signal.SIGTERM)
                except BaseException:
                    pass
                os._exit(0)
        except OSError:
            break
    return 0
