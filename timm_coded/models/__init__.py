from .coded_resnext import CodedBottleneck, CodedResNeXt
