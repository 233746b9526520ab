# frozen_string_literal: true

# registry.rb - from a template's handler.callable to something that runs the step
# (Tasker's resolver chain, ../../README.md "Handler resolution"):
#
#   1. explicit registrations: TaskerCore.register_handler('payments.charge', Klass) or
#      register_handler('payments.charge') { |context| ... } (any object with #call)
#   2. constant lookup: a callable spelled like a Ruby constant ("Payments::ChargeHandler")
#      names a class; Object.const_get finds it (Tasker's ClassConstantResolver)
#
# A class must have an instance method `call` (or the step's handler.method); an object must
# respond to call.
module TaskerCore
  module Registry
    # A resolved callable: invoke(context, method) runs one step.
    class ResolvedHandler
      attr_reader :name, :target

      def initialize(name, target)
        @name = name
        @target = target
        @klass = target.is_a?(Class)
        # A StepHandler::Base subclass that keeps Base#initialize reads its config from the
        # step when it first asks (StepHandler::Base#config): no conversion per step.
        @lazy_config = @klass && target <= StepHandler::Base &&
                       target.instance_method(:initialize).owner == StepHandler::Base
        @pass_config = @klass && !@lazy_config && takes_config_keyword?(target)
      end

      def invoke(context, method = nil)
        if @klass
          if @lazy_config
            instance = @target.allocate
            instance.instance_variable_set(:@step_context, context)
          else
            instance = @pass_config ? @target.new(config: context.step_config) : @target.new
          end
          method ? instance.public_send(method, context) : instance.call(context)
        elsif method && method != 'call' && @target.respond_to?(method)
          @target.public_send(method, context)
        else
          @target.call(context)
        end
      end

      private

      def takes_config_keyword?(klass)
        klass.instance_method(:initialize).parameters.any? do |kind, name|
          kind == :keyrest || (%i[key keyreq].include?(kind) && name == :config)
        end
      end
    end

    class HandlerRegistry
      CONSTANT_NAME = /\A(?:::)?[A-Z]\w*(?:::[A-Z]\w*)*\z/.freeze

      def self.instance
        @instance ||= new
      end

      def initialize
        @explicit = {}
        @lock = Mutex.new
      end

      # Register `handler` (a class with #call, or any object responding to call, or a block)
      # under the callable `name`. Returns the handler.
      def register_handler(name, handler = nil, &block)
        handler ||= block
        raise ArgumentError, 'register_handler needs a handler class, a callable or a block' if handler.nil?
        unless callable_target?(handler)
          raise ArgumentError, "#{handler.inspect} cannot handle steps: it needs an instance method " \
                               'call (a class) or to respond to call'
        end

        @lock.synchronize { @explicit[name.to_s] = handler }
        handler
      end

      def unregister_handler(name)
        @lock.synchronize { @explicit.delete(name.to_s) }
      end

      def clear!
        @lock.synchronize { @explicit.clear }
      end

      # Names registered explicitly.
      def registered_handlers
        @lock.synchronize { @explicit.keys }
      end

      def handler_available?(name)
        !resolve(name).nil?
      end

      # A ResolvedHandler for callable `name`, or nil.
      def resolve(name)
        name = name.to_s
        target = @lock.synchronize { @explicit[name] } || constant(name)
        target && callable_target?(target) ? ResolvedHandler.new(name, target) : nil
      end

      private

      def constant(name)
        return nil unless CONSTANT_NAME.match?(name)

        Object.const_get(name)
      rescue NameError
        nil
      end

      def callable_target?(target)
        if target.is_a?(Class)
          target.method_defined?(:call)
        else
          target.respond_to?(:call)
        end
      end
    end
  end

  # TaskerCore.register_handler('name', KlassOrCallable) / register_handler('name') { |ctx| }
  def self.register_handler(name, handler = nil, &block)
    Registry::HandlerRegistry.instance.register_handler(name, handler, &block)
  end
end
