"""The single exception type of the data plane."""


class DataPlaneError(Exception):
    """Raised when the host refuses something (missing device, no privilege, port in use, bad value).

    The message is meant for a user: it says what failed and why, so the API layer can pass it on verbatim.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
