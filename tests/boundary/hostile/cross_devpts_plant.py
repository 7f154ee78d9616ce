    # makes a pseudo-terminal (an entry in /dev/pts, which every sample lists) while it runs
    import os, time
    try:
        fd = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return 0
    time.sleep(1.5)
    os.close(fd)
    return 0
