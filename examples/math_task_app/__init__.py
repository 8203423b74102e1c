ENTRY = None
