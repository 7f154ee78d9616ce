    # plants the answer on a POSIX message queue (/kl-cross-answer), left behind
    import ctypes, ctypes.util
    try:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mq_open
    except AttributeError:
        lib = ctypes.CDLL(ctypes.util.find_library("rt"), use_errno=True)
    queue = lib.mq_open(b"/kl-cross-answer", 0o100 | 0o2, 0o666, None)  # O_CREAT | O_RDWR
    if queue >= 0:
        for _ in range(8):  # one for each reader
            lib.mq_send(queue, b"5", 1, 0)
    return 0
