"""``python -m keras_dsr.cli``: the ``keras-dsr`` command."""

import sys

from keras_dsr.cli import console_main, interrupt_early

interrupt_early()
sys.exit(console_main())
