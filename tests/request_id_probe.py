"""A job for tests/test_request_id.py: it logs one line, the way provisioning and backup jobs do."""

import logging


def log_one_line(text: str) -> None:
    logging.getLogger("provisioning.probe").info(text)
