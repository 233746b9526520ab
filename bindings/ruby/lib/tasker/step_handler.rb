# frozen_string_literal: true

# step_handler.rb - the handler base class (Tasker's TaskerCore::StepHandler::Base).
#
#   class Payments::Charge < TaskerCore::StepHandler::Base
#     def call(context)
#       amount = context.get_input('amount')
#       raise TaskerCore::Errors::ValidationError, 'amount must be positive' unless amount.positive?
#       success(result: { charged: amount }, metadata: { gateway: 'test' })
#     end
#   end
#
# A new instance handles each step (so instance variables are never shared between threads),
# built with config: (the step's handler.initialization) when its initialize takes it.
module TaskerCore
  module StepHandler
    class Base
      def initialize(config: {})
        @config = config || {}
      end

      # The step's handler.initialization (a Hash).
      def config
        @config ||= @step_context ? @step_context.step_config : {}
      end

      # Run the step: return success(...), failure(...), or a Hash (the result); or raise.
      def call(_context)
        raise NotImplementedError, "#{self.class.name} must implement call(context)"
      end

      def name
        self.class.name
      end

      def version
        '1.0.0'
      end

      # The step succeeded with `result` (JSON-serialisable; children read it with
      # context.get_dependency_result) and optional `metadata` (stored in metadata.custom).
      def success(result: {}, metadata: {})
        Types::StepHandlerCallResult.new(true, result, metadata)
      end

      # The step failed. error_code: stored as the result's metadata.error_code; retryable:
      # whether another attempt may succeed (the template's retry settings still apply);
      # retry_after: seconds to wait at least before it.
      def failure(message:, error_type: 'PermanentError', error_code: nil, retryable: false,
                  metadata: {}, retry_after: nil)
        Types::StepHandlerCallResult.error(message: message, error_type: error_type,
                                           error_code: error_code, retryable: retryable,
                                           retry_after: retry_after, metadata: metadata)
      end
    end
  end
end
