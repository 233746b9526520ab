# frozen_string_literal: true

require 'json'

# fake_step.rb - a stand-in for TaskerCore::Native::Step: the same methods, recording the
# outcome instead of handing it to libtasker.
class FakeStep
  attr_reader :logs
  attr_accessor :handler_name

  def initialize(handler_name: 'Test::Handler', context: {}, config: {}, dependencies: {}, parents: [],
                 attempt: 1, max_attempts: 3, name: 'step_a')
    @handler_name = handler_name
    @context = context
    @config = config
    @dependencies = dependencies
    @parents = parents
    @attempt = attempt
    @max_attempts = max_attempts
    @name = name
    @outcome = nil
    @logs = []
  end

  attr_reader :attempt, :max_attempts, :name

  def task_uuid = 'task-1'
  def step_uuid = 'step-1'
  def correlation_id = 'corr-1'
  def namespace_name = 'ns'
  def task_name = 'task'
  def task_version = '1.0.0'
  def deadline_ms = Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond) + 1000
  def context_json = JSON.generate(@context)
  def config_json = JSON.generate(@config)
  def dependencies_json = JSON.generate(@dependencies)
  def parents_json = JSON.generate(@parents)

  def context = JSON.parse(context_json)
  def config = JSON.parse(config_json)
  def dependencies = JSON.parse(dependencies_json)
  def dependency(name) = @dependencies[name]
  def parents = @parents.dup

  # as the extension answers: nil, a problem String, :text (big integers) or false
  def succeed(value)
    problem = TaskerCore::JsonCheck.find_problem(value, '', 0)
    return problem if problem
    return :text if big?(value)
    return false if @outcome

    @outcome = { success: true, result: JSON.parse(JSON.generate(value)) }
    nil
  end

  def set_metadata(value)
    problem = TaskerCore::JsonCheck.find_problem(value, '', 0)
    return problem if problem
    return :text if big?(value)

    @metadata = JSON.parse(JSON.generate(value))
    nil
  end

  def big?(value)
    case value
    when Integer then !(-(2**63)...(2**63)).cover?(value)
    when Hash then value.values.any? { |v| big?(v) }
    when Array then value.any? { |v| big?(v) }
    else false
    end
  end

  def succeed_json(text)
    return false if @outcome

    @outcome = { success: true, result: JSON.parse(text), text: true }
    true
  end

  def fail_step(type, message, retryable)
    return false if @outcome

    @outcome = { success: false, error_type: type, message: message, retryable: retryable }
    true
  end

  def set_retry_after(seconds)
    @outcome[:retry_after] = seconds if @outcome && !@outcome[:success]
  end

  # as tk_step_set_error_code: only after a failure; nil or '' removes it
  def set_error_code(code)
    return unless @outcome && !@outcome[:success]

    raise TypeError, 'error code must be a String' unless code.nil? || code.is_a?(String)

    if code.nil? || code.empty?
      @outcome.delete(:error_code)
    else
      @outcome[:error_code] = code
    end
  end

  def set_metadata_json(text)
    @metadata = JSON.parse(text)
    true
  end

  # the outcome with the metadata set before or after it
  def outcome
    @outcome && @metadata ? @outcome.merge(metadata: @metadata) : @outcome
  end

  def set_backtrace_json(text)
    @outcome[:backtrace] = JSON.parse(text)
    true
  end

  def log(level, message)
    @logs << [level, message]
  end
end
