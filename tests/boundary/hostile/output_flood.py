    import sys
    chunk = "x" * 65536
    for _ in range(2000):
        sys.stdout.write(chunk)
    return 0
