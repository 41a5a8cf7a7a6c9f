"""prodampi.io"""
