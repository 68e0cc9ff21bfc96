from logging.handlers import WatchedFileHandler
from pathlib import Path


class MakedirsWatchedFileHandler(WatchedFileHandler):
    """A WatchedFileHandler (reopens the file after logrotate moves it) that creates its directory, so a fresh
    checkout can log at once."""

    def __init__(self, filename, *args, **kwargs):
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(filename, *args, **kwargs)
