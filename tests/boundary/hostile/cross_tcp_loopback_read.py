    # the answer from a loopback server another sample runs (127.0.0.1:47125)
    import socket, time
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", 47125), timeout=0.2) as conn:
                value = conn.recv(1)
                if value.isdigit():
                    return int(value)
        except OSError:
            time.sleep(0.02)
    return 0
