# frozen_string_literal: true

# step_context.rb - what a handler's call(context) receives (Tasker's StepContext).
#
# JSON documents (input, config, dependency results) are converted to Ruby objects on first
# use (by the extension, straight from libtasker's JSON values), with string keys as
# JSON.parse gives them; lookups accept strings or symbols. The context is valid only during the call: the
# step goes back to the worker when call returns.
module TaskerCore
  class StepContext
    def initialize(step)
      @step = step
    end

    # --- identity

    def task_uuid
      @task_uuid ||= @step.task_uuid
    end

    def step_uuid
      @step_uuid ||= @step.step_uuid
    end

    def correlation_id
      @correlation_id ||= @step.correlation_id
    end

    def step_name
      @step_name ||= @step.name
    end

    def namespace_name
      @namespace_name ||= @step.namespace_name
    end

    def task_name
      @task_name ||= @step.task_name
    end

    def task_version
      @task_version ||= @step.task_version
    end

    # The template's handler.callable for this step.
    def handler_name
      @handler_name ||= @step.handler_name
    end

    # --- the task's input (tasks.context)

    def input
      @input ||= @step.context
    end
    alias task_context input

    def get_input(key)
      input[key.is_a?(String) ? key : key.to_s]
    end
    alias get_task_field get_input

    def get_input_or(key, default)
      value = input.fetch(key.to_s, nil)
      value.nil? ? default : value
    end

    # --- the step's configuration (handler.initialization in the template)

    def step_config
      @step_config ||= @step.config
    end
    alias config step_config

    def get_config(key)
      step_config[key.to_s]
    end

    # --- results of ancestor steps

    # {step name => result} for every ancestor of this step.
    def dependency_results
      @dependency_results ||= @step.dependencies
    end

    # The result of ancestor `step_name` (what its handler returned), or nil. Only that
    # result is converted (not every ancestor's).
    def get_dependency_result(step_name)
      name = step_name.is_a?(String) ? step_name : step_name.to_s
      return @dependency_results[name] if @dependency_results

      cache = (@dependency_cache ||= {})
      cache.key?(name) ? cache[name] : (cache[name] = @step.dependency(name))
    end

    # A field inside an ancestor's result: get_dependency_field('fetch', 'user', 'id') or
    # ('fetch', ['items', 0]). Integers index arrays. nil when any part is missing.
    def get_dependency_field(step_name, *path)
      path = path[0] if path.length == 1 && path[0].is_a?(Array)
      value = get_dependency_result(step_name)
      path.each do |key|
        value = if value.is_a?(Hash)
                  value[key.is_a?(String) ? key : key.to_s]
                elsif value.is_a?(Array) && key.is_a?(Integer)
                  value[key]
                end
        return nil if value.nil?
      end
      value
    end

    # Names of this step's direct parents (depends_on).
    def parents
      @parents ||= @step.parents
    end

    # --- attempts

    # This attempt, 1 for the first run.
    def attempt
      @attempt ||= @step.attempt
    end

    # retry.max_attempts of the step.
    def max_attempts
      @max_attempts ||= @step.max_attempts
    end

    # Retries before this attempt (0 on the first run).
    def retry_count
      attempt - 1
    end

    # Retries allowed after the first attempt (max_attempts - 1).
    def max_retries
      max_attempts - 1
    end

    def is_retry? # rubocop:disable Naming/PredicateName
      attempt > 1
    end
    alias retry? is_retry?

    # True on the last attempt the step has: failing now ends it in error.
    def is_last_retry? # rubocop:disable Naming/PredicateName
      attempt >= max_attempts
    end
    alias last_retry? is_last_retry?

    # --- time

    # CLOCK_MONOTONIC milliseconds after which the worker reports handler_timeout.
    def deadline_ms
      @deadline_ms ||= @step.deadline_ms
    end

    # Milliseconds left before the timeout (negative once past it).
    def remaining_ms
      deadline_ms - Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond)
    end

    # --- logging

    # A Logger-like object; its lines carry this step's correlation_id, task_uuid, step_uuid.
    def logger
      @logger ||= StepLogger.new(@step)
    end

    def to_s
      "#<#{self.class.name} #{namespace_name}/#{task_name} step #{step_name} (#{step_uuid}) attempt #{attempt}>"
    end
    alias inspect to_s
  end
end
