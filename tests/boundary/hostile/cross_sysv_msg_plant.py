    # plants the answer as a message on a SysV message queue (key 0x4B4C5332), left behind
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    qid = libc.msgget(0x4B4C5332, 0o1666)  # IPC_CREAT | 0666
    if qid >= 0:
        message = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + 8)
        ctypes.c_long.from_buffer(message).value = 1
        message[ctypes.sizeof(ctypes.c_long)] = b"5"
        for _ in range(8):  # one for each reader
            libc.msgsnd(qid, message, 1, 0o4000)  # IPC_NOWAIT
    return 0
