    # 5 if another sample's pseudo-terminal shows in /dev/pts
    import os, time
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        try:
            if [name for name in os.listdir("/dev/pts") if name.isdigit()]:
                return 5
        except OSError:
            pass
        time.sleep(0.02)
    return 0
