"""prodampi.stages"""
