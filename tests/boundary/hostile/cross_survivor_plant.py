    # a daemon of its uid that kills every other process it may signal (a clean-up running
    # as this uid among them), outlives the sample, and serves the answer on an abstract
    # unix socket (@kl-cross-answer) to whoever comes later
    import os, signal, socket, time
    if os.fork() == 0:
        try:
            os.setsid()
            os.closerange(0, 256)  # nothing of the job's: its pipes close, the job looks over
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind("\0kl-cross-answer")
            server.listen(8)
            server.setblocking(False)
            end = time.monotonic() + 60
            while time.monotonic() < end:
                os.kill(-1, signal.SIGKILL)
                try:
                    conn, _ = server.accept()
                    conn.setblocking(True)
                    conn.sendall(b"5")
                    conn.close()
                except OSError:
                    pass
        except BaseException:
            pass
        os._exit(0)
    time.sleep(0.2)
    return 0
