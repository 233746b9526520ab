# frozen_string_literal: true

# interrupts.rb - run by test_ruby.c (test_ruby_threads_interrupt_waits): a Ruby thread
# waiting for a step (TaskerCore::Native::Worker#run_next, GVL released) is reached by
# Thread#kill and Thread#raise at once (tk_host_worker_wake), well before its wait slice
# (SLICE_MS) would end; #close ends every wait at once; #stop is prompt.
# Usage: ruby -I bindings/ruby/lib interrupts.rb DATABASE_URL TEMPLATES_DIR (with
# TASKER_RUBY_NATIVE set). Exit 0 when every check passes.
require 'tasker'

def check(what, ok)
  return if ok

  warn "FAILED: #{what}"
  exit 1
end

def elapsed_ms(since)
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - since) * 1000
end

TaskerCore::Native.load!
# Prompt, plus scheduling on a busy machine; a wait that only ends at its slice boundary (no
# wake) takes SLICE_MS - 200 ms or more here and fails.
limit = 500
check("SLICE_MS (#{TaskerCore::Native::SLICE_MS}) leaves room to tell a wake from a slice end",
      TaskerCore::Native::SLICE_MS - 200 > limit)
worker = TaskerCore::Native::Worker.new(nil, ["database.url=#{ARGV[0]}", "worker.templates=#{ARGV[1]}",
                                              'log.level=warn'],
                                        ['MathWorkflows::SquareHandler'], nil, false)
check('no health endpoint: no port', worker.port.nil?)

waiter = Thread.new { worker.run_next(-1) { raise 'no step was expected' } }
sleep 0.2
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
waiter.kill
waiter.join
check("Thread#kill took #{elapsed_ms(started).round} ms", elapsed_ms(started) < limit)

waiter = Thread.new do
  worker.run_next(-1) { raise 'no step was expected' }
rescue RuntimeError => e
  e
end
sleep 0.2
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
waiter.raise(RuntimeError, 'wake up')
check('Thread#raise reached the waiting thread', waiter.value.message == 'wake up')
check("Thread#raise took #{elapsed_ms(started).round} ms", elapsed_ms(started) < limit)

check('a timed wait ends with nil', worker.run_next(50) { raise 'no step was expected' }.nil?)

waiters = Array.new(3) { Thread.new { worker.run_next(-1) { raise 'no step was expected' } } }
sleep 0.2
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
worker.close
check('close ends every wait with false', waiters.map(&:value) == [false, false, false])
check("close took #{elapsed_ms(started).round} ms", elapsed_ms(started) < limit)

worker.stop
check('stopped', !worker.running? && worker.run_next(10) { raise 'no step' } == false)
worker.stop # idempotent
puts 'interrupts: all checks passed'
