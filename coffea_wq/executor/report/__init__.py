"""``coffea-wq report LOGDIR``: a finished run's logs as one self-contained HTML page.

``history.py`` reads the logs (``read_history``), ``page.py`` draws them (``render``).
"""
