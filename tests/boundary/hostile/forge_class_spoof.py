    # claims to be an int through __class__ (isinstance(x, int) is True) and equals everything
    class Spoof:
        __class__ = property(lambda self: int)

        def __eq__(self, other):
            return True

        __hash__ = object.__hash__
    return Spoof()
