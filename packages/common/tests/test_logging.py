"""The ``mammo`` logger: libraries log, command-line tools show it once, at the right level."""

from __future__ import annotations

import logging

import pytest

from mammo_common.cli_support import LOGGER, setup_logging


@pytest.fixture(autouse=True)
def _restore_logger():
    logger = logging.getLogger(LOGGER)
    saved = (logger.level, list(logger.handlers), logger.propagate, logging.getLogger().level)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]
    logging.getLogger().setLevel(saved[3])


def test_info_reaches_stderr_once(capfd: pytest.CaptureFixture[str]) -> None:
    logging.getLogger(LOGGER).handlers.clear()
    setup_logging()
    setup_logging()  # a second call adds no second handler
    log = logging.getLogger(LOGGER)
    log.info("Epoch %d/%d", 1, 3)
    log.debug("hidden")
    out, err = capfd.readouterr()
    assert out == "" and err.count("INFO mammo: Epoch 1/3") == 1 and "hidden" not in err
    setup_logging(verbose=True)
    log.debug("shown")
    assert "DEBUG mammo: shown" in capfd.readouterr().err
    assert logging.getLogger().level == logging.INFO  # other libraries: INFO when verbose
