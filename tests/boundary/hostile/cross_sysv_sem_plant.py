    # plants the answer as the value of a SysV semaphore (key 0x4B4C5333), left behind
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    semid = libc.semget(0x4B4C5333, 1, 0o1666)  # IPC_CREAT | 0666
    if semid >= 0:
        libc.semctl(semid, 0, 16, 5)  # SETVAL
    return 0
