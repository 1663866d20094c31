"""Helpers the tests share (sockets, processes, waiting, captures, fakes); fixtures stay in conftest."""
