    # leaves behind as many files as it can make in 1.5 s: a clean-up deleting them one by
    # one holds up the whole batch for seconds
    import os, time
    end = time.monotonic() + 1.5
    n = 0
    try:
        os.mkdir("many")
        while time.monotonic() < end:
            for _ in range(500):
                os.close(os.open(f"many/{n}", os.O_CREAT | os.O_WRONLY, 0o600))
                n += 1
    except OSError:
        pass
    return 0
