module edgepack.test/ollamarender

go 1.21
