"""Keras layers of keras_dsr."""

from keras_dsr.layers.parallel_scan_rnn import ParallelScanRNN
from keras_dsr.layers.gtf_deer import GTFDEERLayer
from keras_dsr.layers.deer import DEERLayer
