package transfer

func cleanupBenchFiles() {}
