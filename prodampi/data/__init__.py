"""prodampi.data"""
