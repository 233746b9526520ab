# frozen_string_literal: true

# e2e_handlers.rb - Ruby handlers of the end-to-end test tests/e2e/test_ruby.c: each shows one
# way a handler ends a step (see the templates beside this directory).
require 'tasker'

module E2eRuby
  # Fails with a RetryableError on attempts 1 and 2, then succeeds: {"attempts": 3}.
  class FlakyHandler < TaskerCore::StepHandler::Base
    def call(context)
      if context.attempt < 3
        raise TaskerCore::Errors::RetryableError.new("not yet (attempt #{context.attempt})", retry_after: 0.2)
      end

      success(result: { attempts: context.attempt, was_retry: context.is_retry? })
    end
  end

  # Always a PermanentError: one attempt, then the task is in error.
  class DeclinedHandler < TaskerCore::StepHandler::Base
    def call(_context)
      raise TaskerCore::Errors::PermanentError.new('card declined', error_code: 'CARD_DECLINED')
    end
  end

  # An unexpected exception (ZeroDivisionError): retryable, stored with its backtrace.
  class BoomHandler < TaskerCore::StepHandler::Base
    def call(context)
      divide(context.get_input_or('numerator', 1), 0)
    end

    private

    def divide(a, b)
      a / b
    end
  end

  # A result JSON cannot hold: SerializationError, not retried.
  class NotJsonHandler < TaskerCore::StepHandler::Base
    def call(_context)
      success(result: { 'at' => Time.now })
    end
  end

  # Writes through the step logger: the lines carry the step's correlation_id.
  class LoggingHandler < TaskerCore::StepHandler::Base
    def call(context)
      context.logger.info("hello from ruby step #{context.step_name}")
      context.logger.warn { "a warning from #{context.task_name}" }
      { 'logged' => true }
    end
  end

  # Sleeps config.seconds (past its step's timeout in timeout.yaml).
  class SleepHandler < TaskerCore::StepHandler::Base
    def call(context)
      sleep context.get_config('seconds')
      { 'slept' => context.get_config('seconds') }
    end
  end

  # Returns at once.
  class QuickHandler
    def call(context)
      { 'quick' => true, 'step' => context.step_name }
    end
  end
end

# An explicit registration under a name that is not a Ruby constant.
TaskerCore.register_handler('e2e_ruby.echo_input') do |context|
  { 'input' => context.input, 'parents' => context.parents }
end
