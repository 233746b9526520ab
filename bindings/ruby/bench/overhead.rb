#!/usr/bin/env ruby
# frozen_string_literal: true

# overhead.rb - per-workflow overhead of Ruby handlers over C, against a running server that
# has a C worker for examples/templates and a Ruby worker for examples/ruby/templates
# (overhead.sh sets that up). Runs linear_workflow (builtin.square) and linear_workflow_rb
# (MathWorkflows::SquareHandler) alternately, one task at a time with wait_ms, and prints:
#   - end-to-end time per task (POST until the task is complete), median and p90;
#   - handler time per task: the sum of the 4 steps' metadata.execution_time_ms, which the C
#     runtime measures around the handler call, so for Ruby it includes the hand-over to the
#     Ruby thread and back (wake-up, GVL, JSON in and out).
#
# Usage: overhead.rb SERVER_URL [N]   (e.g. http://127.0.0.1:8080 50)
require 'json'
require 'net/http'
require 'securerandom'

server = URI(ARGV[0] || abort('usage: overhead.rb SERVER_URL [N]'))
n = Integer(ARGV[1] || 50)
http = Net::HTTP.start(server.host, server.port)

def run_task(http, namespace)
  body = JSON.generate(namespace: namespace, name: 'mathematical_sequence', version: '1.0.0',
                       context: { even_number: 6, run: SecureRandom.uuid })
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  res = http.post('/v1/tasks?wait_ms=10000', body, 'Content-Type' => 'application/json')
  elapsed = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000
  task = JSON.parse(res.body)
  abort "#{namespace}: #{res.code} #{res.body[0, 300]}" unless task['status'] == 'complete'
  [task['task_uuid'], elapsed]
end

def handler_ms(http, uuid)
  steps = JSON.parse(http.get("/v1/tasks/#{uuid}/workflow_steps").body)
  steps.sum { |s| s.dig('results', 'metadata', 'execution_time_ms').to_f }
end

def stats(values)
  sorted = values.sort
  median = sorted.length.odd? ? sorted[sorted.length / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2.0
  [median, sorted[(sorted.length * 0.9).ceil - 1]]
end

namespaces = { 'C' => 'linear_workflow', 'Ruby' => 'linear_workflow_rb' }
5.times { namespaces.each_value { |ns| run_task(http, ns) } } # warm-up
wall = Hash.new { |h, k| h[k] = [] }
uuids = Hash.new { |h, k| h[k] = [] }
n.times do
  namespaces.each do |lang, ns|
    uuid, ms = run_task(http, ns)
    wall[lang] << ms
    uuids[lang] << uuid
  end
end
handler = namespaces.keys.to_h { |lang| [lang, uuids[lang].map { |u| handler_ms(http, u) }] }

puts "linear (4 steps): #{n} tasks with C handlers and #{n} with Ruby handlers, alternating, " \
     'one at a time (wait_ms)'
[['end-to-end per task', wall], ['handler time per task (4 steps)', handler]].each do |title, data|
  c_med, c_p90 = stats(data['C'])
  r_med, r_p90 = stats(data['Ruby'])
  printf("  %-34s median C %7.3f ms, Ruby %7.3f ms, Ruby - C %+7.3f ms   (p90 C %.3f, Ruby %.3f)\n",
         title, c_med, r_med, r_med - c_med, c_p90, r_p90)
end
