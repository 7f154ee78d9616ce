    # 5 if its own small writes fail because another sample filled the disk
    import os, time
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        try:
            with open("probe", "wb") as handle:
                handle.write(b"\0" * (1 << 20))
            os.remove("probe")
        except OSError:
            return 5
        time.sleep(0.05)
    return 0
