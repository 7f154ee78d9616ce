    import os, time
    if os.fork() == 0:
        time.sleep(3600)
    return 0
