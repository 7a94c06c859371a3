"""``python -m keras_dsr.cli``: the ``keras-dsr`` command."""

import sys

from keras_dsr.cli import interrupt_early, main

interrupt_early()
sys.exit(main())
