"""The command-line room: ``voicecheck`` (serve, scan, stream; export's commands by name).

May import ``service.detector``, ``service.web`` (to serve, and the contract's answer shape) and
``service.labels``; never ``export`` (its commands are run by module name, with the export extra).
"""
