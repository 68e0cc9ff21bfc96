from logging.handlers import RotatingFileHandler, WatchedFileHandler
from pathlib import Path


class MakedirsRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler that creates its directory, so a fresh checkout can log at once."""

    def __init__(self, filename, *args, **kwargs):
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(filename, *args, **kwargs)


class MakedirsWatchedFileHandler(WatchedFileHandler):
    """A WatchedFileHandler (reopens the file after logrotate moves it) that creates its directory."""

    def __init__(self, filename, *args, **kwargs):
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(filename, *args, **kwargs)
