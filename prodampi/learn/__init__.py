"""prodampi.learn"""
