package proxyrules

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelChunk is how many items a worker of inParallel takes at a time:
// a worker that loses its CPU to another process holds the others up by a
// chunk at most.
const parallelChunk = 64

// parallelWorkers is how many workers inParallel uses for n items: as many
// as GOMAXPROCS allows, and one unless each gets four chunks or more.
func parallelWorkers(n int) int {
	return max(1, min(runtime.GOMAXPROCS(0), n/(4*parallelChunk)))
}

// inParallel calls work(k, from, to) for consecutive ranges [from, to) of
// at most parallelChunk items that together cover 0 .. n-1, from workers
// goroutines (parallelWorkers(n)); k, in 0 .. workers-1, is the calling
// worker's number, for scratch space of its own. It returns when all are
// done.
func inParallel(n, workers int, work func(k, from, to int)) {
	inChunks(n, parallelChunk, workers, work)
}

// inChunks is inParallel with chunks of the given size.
func inChunks(n, chunk, workers int, work func(k, from, to int)) {
	var next atomic.Int64
	run := func(k int) {
		for {
			from := int(next.Add(int64(chunk))) - chunk
			if from >= n {
				return
			}
			work(k, from, min(from+chunk, n))
		}
	}
	if workers <= 1 {
		run(0)
		return
	}
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() { run(k) })
	}
	wg.Wait()
}

// runTasks runs independent tasks on workers goroutines (at most one per
// task), and returns when all are done.
func runTasks(tasks []func(), workers int) {
	inChunks(len(tasks), 1, min(workers, len(tasks)), func(_, from, to int) {
		for _, task := range tasks[from:to] {
			task()
		}
	})
}
