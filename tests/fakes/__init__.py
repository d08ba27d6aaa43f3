"""Fakes for protocol edges DevMesh cannot run in tests (an Ollama server)."""
