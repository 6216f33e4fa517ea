"""The foundation every layer stands on: errors, the result model, deadlines, address
helpers, redaction. It imports nothing of the layers above.
"""
