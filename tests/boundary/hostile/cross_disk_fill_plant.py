    # fills the disk its work directory is on (15 MB files: RLIMIT_FSIZE is 16 MB), and holds it
    import os, time
    chunk = b"\0" * (1 << 20)
    try:
        for n in range(64):
            with open(f"fill{n}", "wb") as handle:
                for _ in range(15):
                    handle.write(chunk)
    except OSError:
        pass
    time.sleep(1.5)
    return 0
