    # 5 if at least twenty pids it may not signal exist at once: another sample's processes
    import os, time
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        others = 0
        for pid in range(1, 4096):
            try:
                os.kill(pid, 0)
            except PermissionError:
                others += 1
            except OSError:
                pass
        if others >= 20:
            return 5
        time.sleep(0.05)
    return 0
