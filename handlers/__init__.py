"""(placeholder: main has the real docstring)"""
