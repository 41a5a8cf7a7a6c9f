"""prodampi.parallel"""
