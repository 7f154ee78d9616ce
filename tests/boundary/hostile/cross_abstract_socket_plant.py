    # serves the answer on an abstract unix socket (@kl-cross-answer) while it runs
    import socket, time
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind("\0kl-cross-answer")
        server.listen(8)
    except OSError:
        return 0
    server.settimeout(0.05)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        try:
            conn, _ = server.accept()
            conn.sendall(b"5")
            conn.close()
        except OSError:
            pass
    return 0
