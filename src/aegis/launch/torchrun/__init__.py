"""``launcher=torchrun``: a DDP gang of processes on this machine (or several, by hand).

``schema`` holds its config, ``checks`` its rules, ``launcher`` renders the torchrun command and
supervises the gang.
"""
