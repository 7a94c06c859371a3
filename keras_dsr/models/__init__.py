"""Keras models of keras_dsr."""

from keras_dsr.models.ssm import SSMModel
from keras_dsr.models.dsr import DSRModel
