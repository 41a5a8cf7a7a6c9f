"""prodampi.inference"""
